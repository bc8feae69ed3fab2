"""Task results: the wire format of a result (:mod:`.wire`), the caller's handles (:mod:`.handle`),
the app's inbox (:mod:`.caller`) and groups (:mod:`.group`). docs/results.md has the design."""
