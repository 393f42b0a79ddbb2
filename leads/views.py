"""The broker's pages. Thin: parse input, call a selector or service, render."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts import selectors as connection_selectors


@login_required
def dashboard(request):
    connections = connection_selectors.connection_list(broker=request.user)
    return render(request, "leads/dashboard.html", {"connections": connections})
