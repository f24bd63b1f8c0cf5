enum CheckpointImportPlaceholder {}
