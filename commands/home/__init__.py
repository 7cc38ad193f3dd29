"""The App Home: each person's integrations and what needs them, in Slack's Home tab."""
