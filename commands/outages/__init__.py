"""System outages: when a system is down, one message per channel for every integration
touching it, and their alerts folded under it rather than posted and escalated one by one."""
