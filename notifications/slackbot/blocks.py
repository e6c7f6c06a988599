"""Block Kit for /gpu status and /gpu realtime, kept within Slack's limits (50 blocks, 3000 characters a text):
each server's lines, escaped, go into as many sections as they need, cut between GPUs; what does not
fit in 50 blocks is counted, with where to see it.

A constant number of queries however many servers: one read of the Now board, one of live
telemetry, one of the holders' Slack ids.
"""
from django.utils import timezone

from monitoring.live import HostState, Load, live_hosts
from reservations.models import Profile
from reservations.selectors import now_board, pool_use

from ..messages import MESSAGE_BLOCK_LIMIT, SECTION_TEXT_LIMIT, link, slack_escape, slack_sections, time_zone_of
from .replies import Reply, command_name

CONTINUED = " (continued)"  # after a server's title, on the sections after its first

LOAD_MARKS = {
    Load.IDLE: ":white_circle: idle",
    Load.ACTIVE: ":large_green_circle: active",
    Load.HIGH: ":red_circle: high load",
    Load.ERROR: ":warning: unreadable",
    Load.NO_DATA: "",
}


class UnknownServer(Exception):
    pass


def status_reply(user, *, now=None, server=None):
    """Every server's GPUs: free or held by whom until when, for what, with the live load."""
    now = now or timezone.now()
    zone = time_zone_of(user)
    groups = [group for group in now_board(now) if group.title != "Rooms"]
    if server is not None:
        groups = [group for group in groups if group.title.lower() == server.lower()]
        if not groups:
            return _unknown_server(server, now)
    hosts = {host.name: host for host in live_hosts(now, server=groups[0].title if server else None)}
    mentions = _slack_ids({unit.current.user_id for group in groups for unit in group.units if unit.current})

    pools = pool_use([group.server for group in groups if group.server is not None], now)
    header = f"*GPUs now* ({_clock(now, zone)} {now.astimezone(zone).tzname()})"
    sections = []
    for group in groups:
        host = hosts.get(group.title)
        loads = {gpu.index: gpu.load for gpu in host.gpus} if host else {}
        title = f"*{slack_escape(group.title)}*"
        if group.subtitle:
            title += f" ({slack_escape(group.subtitle)})"
        if host is not None and host.state in (HostState.STALE, HostState.NEVER):
            title += f" :warning: no fresh telemetry ({host.state})"
        lines = [title]
        for unit in group.units:
            index = int(unit.label.split()[-1]) if unit.label.startswith("GPU ") else None
            lines.append(_unit_line(unit, loads.get(index, Load.NO_DATA), mentions, zone))
        if group.server is not None and group.server.pk in pools:
            lines.append(_pool_line(group.server, pools[group.server.pk]))
        sections.append(lines)
    free = sum(unit.free for group in groups for unit in group.units)
    total = sum(len(group.units) for group in groups)
    text = f"{free} of {total} GPUs free now."
    return Reply(text, blocks=_blocks(header, sections, f"{command_name()} status SERVER", link("now"), "the Now page"))


def realtime_reply(user, *, now=None, server=None):
    """Per GPU: utilization, memory, temperature and processes, from the latest telemetry."""
    now = now or timezone.now()
    zone = time_zone_of(user)
    hosts = live_hosts(now)
    if server is not None:
        hosts = [host for host in hosts if host.name.lower() == server.lower()]
        if not hosts:
            return _unknown_server(server, now, monitored=True)
    sections = []
    for host in hosts:
        lines = [f"*{slack_escape(host.name)}*" + ("" if host.fresh else f" :warning: no fresh telemetry ({host.state})")]
        if host.last_seen_at:
            lines[0] += f", read {_clock(host.last_seen_at, zone)}"
        for gpu in host.gpus:
            lines.append(_gpu_line(gpu))
        sections.append(lines)
    if not sections:
        return Reply("No monitored servers report telemetry yet.")
    header = f"*GPUs live* ({_clock(now, zone)} {now.astimezone(zone).tzname()})"
    return Reply(f"Live telemetry of {len(hosts)} servers.", blocks=_blocks(header, sections, f"{command_name()} realtime SERVER", link("gpus"), "the GPUs page"))


def _unknown_server(name, now, monitored=False):
    names = [group.title for group in now_board(now) if group.title != "Rooms"]
    known = ", ".join(slack_escape(name) for name in names) or "none yet"
    what = "monitored server" if monitored else "server"
    return Reply(f"There is no {what} '{slack_escape(name)}'; servers: {known}.")


def _unit_line(unit, load, mentions, zone):
    mark = LOAD_MARKS.get(load, "")
    mark = f" · {mark}" if mark else ""
    holding = unit.current
    if holding is None:
        following = ""
        if unit.next is not None:
            following = f", next {_who(unit.next, mentions)} from {_clock(unit.next.start, zone)}"
        return f"`{slack_escape(unit.label)}` free{following}{mark}"
    purpose = f", {slack_escape(holding.purpose)}" if holding.purpose else ""
    return f"`{slack_escape(unit.label)}` {_who(holding, mentions)} until {_clock(holding.end, zone)}{purpose}{mark}"


def _pool_line(server, used):
    """'CPU cores: 64 of 192 booked · memory: 256 of 1536 GiB booked' for a server sharing them."""
    cores, memory = used
    parts = []
    if server.cpu_cores is not None:
        parts.append(f"CPU cores: {cores} of {server.cpu_cores} booked")
    if server.memory_gib is not None:
        parts.append(f"memory: {memory} of {server.memory_gib} GiB booked")
    return " · ".join(parts)


def _gpu_line(gpu):
    if gpu.error:
        return f"`GPU {gpu.index}` :warning: {slack_escape(gpu.error)}"
    if gpu.gpu_util is None:
        return f"`GPU {gpu.index}` no data"
    memory = f"{gpu.memory_used_mib or 0}/{gpu.memory_total_mib or '?'} MiB"
    parts = [f"`GPU {gpu.index}` {gpu.gpu_util}%", memory]
    if gpu.temperature_c is not None:
        parts.append(f"{gpu.temperature_c}°C")
    if gpu.processes:
        shown = [f"{slack_escape(p.member or p.unix_user or '?')} ({slack_escape(p.name or str(p.pid))}, {p.used_memory_mib or 0} MiB)" for p in gpu.processes[:4]]
        more = f" +{len(gpu.processes) - 4}" if len(gpu.processes) > 4 else ""
        parts.append(", ".join(shown) + more)
    elif gpu.processes is not None:
        parts.append("no processes")
    return " · ".join(parts)


def _who(holding, mentions):
    slack_id = mentions.get(holding.user_id)
    return f"<@{slack_id}>" if slack_id else slack_escape(holding.name)


def _slack_ids(user_ids):
    if not user_ids:
        return {}
    rows = Profile.objects.filter(user_id__in=user_ids).exclude(slack_user_id="").values_list("user_id", "slack_user_id")
    return dict(rows)


def _clock(moment, zone):
    return f"{moment.astimezone(zone):%a %H:%M}"


def _blocks(header, servers, hint, page, page_name):
    """A header, then each server's lines (its title first, then one line per GPU) in sections of at
    most 3,000 characters. If they need more than a message's 50 blocks, a last line says how many
    GPUs of how many servers are left out, and where to see them."""
    pieces = []
    for number, (title, *lines) in enumerate(servers):
        for part, chunk in enumerate(slack_sections(lines, limit=SECTION_TEXT_LIMIT - len(title) - len(CONTINUED) - 1) or [[]]):
            pieces.append((number, [title + (CONTINUED if part else ""), *chunk]))
    room = MESSAGE_BLOCK_LIMIT - 1
    if len(pieces) > room:
        room -= 1  # for the note
    blocks = [_section(header)] + [_section("\n".join(lines)) for _, lines in pieces[:room]]
    left = pieces[room:]
    if left:
        gpus = sum(1 for _, lines in left for line in lines if line.startswith("`"))  # a GPU's line starts with its label
        cut = len({number for number, _ in left})
        note = f"Not shown, for Slack's limit of {MESSAGE_BLOCK_LIMIT} blocks: {gpus} GPU{'s' if gpus != 1 else ''} of {cut} server{'s' if cut != 1 else ''}. "
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note + f"See a server alone with `{hint}`, or all on <{page}|{page_name}>."}]})
    return blocks


def _section(text):
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
