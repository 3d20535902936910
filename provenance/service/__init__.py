"""The attestation service: `provenance serve` and `provenance build --service SOCKET`.

An agent that holds a signing key can sign anything; so the key goes to a service that
runs as its own Unix user, and the agent asks it over a Unix socket (docs/service.md).
`protocol` is the wire format and the peer's credentials; `mirror` the service's own copy
of each requester's repository; `server` the service, which runs the attest pipeline on
a clean work tree of the commit; `client` what `build --service` runs as the requester;
`setup` the one-command local installation (`serve --setup`).
"""
