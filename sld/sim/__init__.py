"""The simulated TXT platform: scenarios, image builder, swtpm launch emulation."""
