"""Pieces shared by built-in method plugins (backbones, losses); not a plugin itself."""
