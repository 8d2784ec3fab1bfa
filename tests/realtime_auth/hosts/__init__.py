"""Host projects with other user models than the demo's, each a settings module run in its own process
(``test_hosts.py``): ``AUTH_USER_MODEL`` cannot change inside one test process."""
