"""Who is calling: app keys and users' sign-in tokens, checked without Flask."""
