"""The page a member opens from the e-mailed /gpu link confirmation: POST links their Slack account."""
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from .linking import LinkError, read_token, set_slack_id


@require_http_methods(["GET", "POST"])
def confirm(request, token):
    """GET shows what will be linked; POST links it (a mail scanner following the link links nothing)."""
    try:
        member, slack_user_id = read_token(token)
        if request.method == "POST":
            set_slack_id(member, slack_user_id)
    except LinkError as error:
        return render(request, "notifications/slack_link.html", {"error": str(error)}, status=400)
    return render(request, "notifications/slack_link.html", {
        "member": member, "slack_user_id": slack_user_id, "done": request.method == "POST",
    })
