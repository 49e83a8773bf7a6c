"""The live-help hub: connections, the bus between nodes, requests and offers."""
