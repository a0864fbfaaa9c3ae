"""Plans as data: the models, YAML loading with line numbers, lint rules, the JSON Schema,
templating and runbooks. It names no kind itself: :mod:`backout.plans` supplies them."""
