"""How the four packages may import each other: no module imports itself in a circle, and the apps
depend one way (the contract below). grimp reads every import, those inside functions too."""
import itertools

import grimp
import pytest

PACKAGES = ("reservations", "notifications", "monitoring", "labres")

# The surfaces that compose pages from several apps: an app's views and management commands (and the
# urls routing to them) may use another app's models, forms and services (STYLE.md), never its views.
SURFACES = ("reservations.views", "reservations.urls", "reservations.management")


@pytest.fixture
def graph():
    return grimp.build_graph(*PACKAGES, cache_dir=None)  # no cache folder in the checkout; about a second


def _cycles(graph):
    """One circle of imports per strongly connected group of modules (Tarjan's algorithm), as chains."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = set()
            while module not in group:
                group.add(stack.pop())
            on_stack.difference_update(group)
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    circles = []
    for group in groups:
        first = min(group)
        back = next(imported for imported in sorted(graph.find_modules_directly_imported_by(first)) if imported in group)
        circles.append((first, *graph.find_shortest_chain(importer=back, imported=first)))
    return circles


def _shown(chain):
    return " -> ".join(chain)


def test_no_module_imports_itself_in_a_circle(graph):
    circles = _cycles(graph)
    assert not circles, "import cycles:\n" + "\n".join(_shown(circle) for circle in circles)


def test_reservations_does_not_import_notifications_or_monitoring(graph):
    """Reservations sends signals; notifications and monitoring listen. Only its pages (views, management
    commands) show what other apps know, the way a project's pages may."""
    for module in list(graph.modules):
        if module.startswith(SURFACES):
            graph.remove_module(module)
    chains = set()
    for other in ("notifications", "monitoring"):
        chains |= graph.find_shortest_chains(importer="reservations", imported=other)
    assert not chains, "reservations depends on:\n" + "\n".join(_shown(chain) for chain in sorted(chains))


def test_monitoring_does_not_import_notifications(graph):
    """Monitoring raises alerts (models); notifications tells of them, not the other way."""
    chains = graph.find_shortest_chains(importer="monitoring", imported="notifications")
    assert not chains, "\n".join(_shown(chain) for chain in sorted(chains))


@pytest.mark.parametrize(("importer", "app"), list(itertools.permutations(("reservations", "notifications", "monitoring"), 2)))
def test_no_app_imports_another_apps_views(graph, importer, app):
    """Only the project's urls (labres.urls) route to every app's views."""
    views = [module for module in graph.modules if module.startswith(f"{app}.") and (".views" in module or module.endswith(".urls"))]
    found = [
        f"{found['importer']} -> {found['imported']}"
        for module in views
        for found in graph.find_matching_direct_imports(import_expression=f"{importer}.** -> {module}")
    ]
    assert not found, "\n".join(found)
