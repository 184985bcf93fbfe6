"""Pieces shared by built-in plugins, not a plugin itself: backbones for methods (:mod:`.backbones`);
layouts, label files and sample tables for image datasets (:mod:`.image_datasets`); MAE building blocks
(:mod:`.mae`) and ViT sizes (:mod:`.vit_sizes`); image grids of method outputs (:mod:`.image_grid`)."""
