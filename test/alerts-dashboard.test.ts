import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import type { FastifyInstance } from 'fastify'
import { startBareApp } from './helpers/stack.js'

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')
const METRIC = /\b(?:cloudoreg|process|nodejs)_[A-Za-z0-9_]+\b/g
const metricsIn = (expr: string): string[] => [...new Set(expr.match(METRIC) ?? [])]

/** The series names a running app's /metrics exports (a histogram's as _bucket, _sum and _count too). */
async function exported (app: FastifyInstance): Promise<Set<string>> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  const names = new Set<string>()
  for (const [, name, type] of res.body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name)
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix)
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix)
  }
  return names
}

t.test('every metric the alerts and the dashboard name is one that cloudoreg\'s /metrics exports', async t => {
  const names = await exported(await startBareApp(t))
  t.ok(names.has('cloudoreg_inbox_pending') && names.has('process_resident_memory_bytes'), 'the live names were read')
  const check = (where: string, expr: string): void => {
    const used = metricsIn(expr)
    t.ok(used.length > 0, `${where} names a metric`)
    for (const name of used) t.ok(names.has(name), `${where}: ${name} is exported`)
  }

  const rule = parse(read('deploy/prometheusrule.yaml'))
  t.match(rule, { apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: { name: 'cloudoreg' } })
  const alerts = new Map<string, string>()
  for (const group of rule.spec.groups) {
    for (const r of group.rules) {
      t.match(r, { alert: /^Cloudoreg[A-Za-z]+$/, expr: String, labels: { severity: /^(warning|critical)$/ }, annotations: { summary: String } }, r.alert)
      if (r.for !== undefined) t.match(r.for, /^\d+[smh]$/, `${r.alert}: for`)
      check(`alert ${r.alert}`, r.expr)
      alerts.set(r.alert, r.expr)
    }
  }
  // What pages an SRE, each covered by an alert.
  for (const [what, alert, metric] of [
    ['inbox backlog age', 'CloudoregInboxBacklogOld', 'cloudoreg_inbox_oldest_pending_age_seconds'],
    ['dead letters rising', 'CloudoregDeadLettersRising', 'cloudoreg_events_processed_total'],
    ['a breaker open for long', 'CloudoregBreakerOpenLong', 'cloudoreg_upstream_breaker_open_seconds_total'],
    ['status relay stuck', 'CloudoregStatusRelayStuck', 'cloudoreg_outbox_oldest_unsent_age_seconds'],
    ['drift found by the sweep', 'CloudoregDriftFound', 'cloudoreg_reconcile_drift'],
    ['replicas without leases', 'CloudoregReplicaWithoutLeases', 'cloudoreg_lease_holders']
  ]) t.match(alerts.get(alert), metric, `${what}: ${alert}`)

  const dashboard = JSON.parse(read('deploy/grafana-dashboard.json'))
  t.match(dashboard, { title: 'cloudoreg', uid: 'cloudoreg', panels: Array })
  const panels = dashboard.panels.filter((p: any) => p.type !== 'row')
  t.ok(panels.length >= 15, 'panels')
  for (const p of panels) {
    t.ok(p.targets.length > 0, `panel ${p.title} has queries`)
    for (const target of p.targets) check(`panel ${p.title}`, target.expr)
  }
  for (const v of dashboard.templating.list.filter((v: any) => v.type === 'query')) check(`variable ${v.name}`, v.definition)
})
