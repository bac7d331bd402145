"""Writes for collaboration, a module per aggregate: trips, conflicts, members, chat, notifications.

Each change to a trip takes the trip's row lock (`locks`), so changes to one trip are
serialized; gets the next `seq` and a row in the event log in the same transaction (`log`); and
is fanned out only after commit. `trip.update` and `conflict.resolve` are client mutations
(`mutations`): answered once, and the same answer again on a retry.
"""
