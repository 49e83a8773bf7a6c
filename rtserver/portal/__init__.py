"""The portal: everything after a session ends.

History and transcripts (:mod:`.history`), refund claims, disputes and
reviews (:mod:`.claims`), statements, the transaction record, payout profiles
and payouts (:mod:`.money`), and the managers' actions on accounts
(:mod:`.accounts`). Each service is handed the stores it needs by the app
factory; the money rules themselves are pure, in :mod:`rtserver.core.ledger`.
"""
