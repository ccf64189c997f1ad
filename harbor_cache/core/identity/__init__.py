"""Who is asking: users, password and token credentials, and whether a token's holder may still act."""
