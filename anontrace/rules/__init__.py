"""Rule files: YAML with line:col marks, validated and compiled into a pipeline."""
