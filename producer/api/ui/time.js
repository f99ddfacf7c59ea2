// Dates as the dashboard shows them: in UTC or in the browser's zone (the toggle in the top
// bar, kept in localStorage), always with the zone named, e.g. "2026-12-06 21:05:03 UTC".

const ZONE = "retrainq.zone";

export function zoneMode() {
  return localStorage.getItem(ZONE) === "utc" ? "utc" : "local";
}

export function setZoneMode(mode) {
  localStorage.setItem(ZONE, mode === "utc" ? "utc" : "local");
}

function parts(ms, extra = {}) {
  const options = {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
    timeZoneName: "short",
    ...extra,
  };
  if (zoneMode() === "utc") options.timeZone = "UTC";
  const out = {};
  for (const part of new Intl.DateTimeFormat("en-US", options).formatToParts(new Date(ms))) out[part.type] = part.value;
  return out;
}

// The short name of the zone dates are shown in ("UTC", "EST", "GMT+1"), at ``ms``.
export function zoneName(ms = Date.now()) {
  return parts(ms).timeZoneName;
}

const toMs = (value) => (typeof value === "number" ? value : Date.parse(value));

export function fmtTime(iso) {
  if (!iso) return "";
  const p = parts(toMs(iso));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

export function fmtClock(iso) {
  if (!iso) return "";
  const p = parts(toMs(iso));
  return `${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

export function fmtDate(iso) {
  if (!iso) return "";
  const p = parts(toMs(iso));
  return `${p.year}-${p.month}-${p.day}`;
}

// "21:05" or "21:05:30" (no zone: a chart names its zone once, in its caption).
export function fmtHourMinute(ms, withSeconds = false) {
  const p = parts(ms);
  return withSeconds ? `${p.hour}:${p.minute}:${p.second}` : `${p.hour}:${p.minute}`;
}
