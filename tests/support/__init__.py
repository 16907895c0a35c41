"""Code the tests put into mediad's processes; see README.md here."""
