"""Each system's producer and tasks; they run in that system's own venv."""
