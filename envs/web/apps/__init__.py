"""The web apps the web env serves: a shop and an issue tracker, each on its own SQLite database."""
