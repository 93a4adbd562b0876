"""Pure nn.Modules: no Lightning in here."""
