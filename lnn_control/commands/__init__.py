"""Small CLI verbs that are not a module of their own."""
