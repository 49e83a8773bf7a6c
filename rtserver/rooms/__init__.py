"""Session rooms: live relay, durable transcripts, billable time, the end of a session."""
