"""Public mode at the door: who a visitor is (address), what they may queue (admission), how many
answers run at once per provider (concurrency), the health endpoint and the privacy notice."""
