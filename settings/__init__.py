"""The runnable Likha ERP Realtime project: settings, ASGI application and URLs."""
