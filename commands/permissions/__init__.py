"""Who may do what: roles from the catalog, people's kinds from the workspace, the rules,
and the audit trail of what was refused and of what changed an alert or a review."""
