"""xuncha_flow."""
