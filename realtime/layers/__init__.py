"""The fan-out channel layer, named in CHANNEL_LAYERS as `realtime.layers.FanoutChannelLayer`."""

from realtime.layers.layer import FanoutChannelLayer

__all__ = ["FanoutChannelLayer"]
