"""Change records: lifecycle, risk, policy, the deploy gate, ITSM export."""
