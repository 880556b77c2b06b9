"""PURE matchers: path and argv globs, addresses, sockaddr parsing."""
