"""The audit ledger (`ledger`, schema in `models`) and what is read from it: summaries,
Markdown and the policy check (`summary`), and the HTML page (`html`).
"""
