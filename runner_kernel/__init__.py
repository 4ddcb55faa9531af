"""What runs inside a user's server: the tool runner, the toolkit for tool code, and the renderer."""
