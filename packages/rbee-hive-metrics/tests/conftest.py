"""No shared fixtures yet; this file marks the tests folder for pytest."""
