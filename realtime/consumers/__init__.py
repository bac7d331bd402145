"""One consumer per connection type, all on the base consumer."""
