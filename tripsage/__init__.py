"""TripSage Realtime: a real-time collaboration backend on Django Channels."""
