"""The head-end's REST API (`/api/v1`): one router per module; app.py includes them."""
