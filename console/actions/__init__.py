"""Actions change the world: flag files, commands, webhooks."""
