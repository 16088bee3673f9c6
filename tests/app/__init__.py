"""Gateway (app/) tests."""
