"""The built-in recipes, registered through the ``lstmzoo.recipes`` entry-point group like any plugin."""
