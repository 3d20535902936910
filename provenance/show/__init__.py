"""`provenance show`: what is attested for a commit (facts.py assembles, render.py prints;
docs/show.md)."""
