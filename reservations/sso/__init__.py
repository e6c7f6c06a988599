"""Single sign-on: members sign in as the lab already does, through OpenID Connect (oidc.py, with
mozilla-django-oidc) or an LDAP / Active Directory server (ldap.py, with django-auth-ldap). Both are off
until their environment variables are set (labres/settings.py, "Single sign-on"); on each sign-in the
directory's word decides the member's staff flag, primary group and unix user name (members.py).
"""
