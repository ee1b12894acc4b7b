"""The operator library: computes (``topi.nn``) and schedules per target (``topi.cpu``, ``topi.cuda``)."""
