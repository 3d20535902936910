"""What we sign and read: in-toto statements, DSSE envelopes, bundles, keys, hashes, VSAs.

Pure data and bytes: nothing here runs a program or reads the repository. Formats import
only `provenance.errors`, `provenance.files` and each other (tests/unit/test_layout.py).
"""
