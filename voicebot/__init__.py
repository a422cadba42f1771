"""The call brain: a live Call, turn-taking, the dialogue core, playout and the CLI."""
