"""The mirror of each connected CINC site, its sync, and the broker's pages."""
