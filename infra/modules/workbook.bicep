// A shared Azure Monitor workbook that charts dvrouter's per-consumer metrics: deliveries
// delivered, failed, kept and retried, breaker state changes and delivery latency. Each
// instance of dvrouter writes one JSON line per consumer per minute, "message":"consumer metrics"
// (docs/delivery.md#metrics); the Functions host forwards stdout lines to Application Insights as
// traces whose message is the line, so the queries below read the fields with parse_json.
// Workbook resource: https://learn.microsoft.com/azure/templates/microsoft.insights/workbooks

@description('Azure region of the workbook (the Application Insights region).')
param location string

@description('Display name of the workbook.')
param displayName string

@description('Application Insights component the workbook queries.')
param appInsightsName string

param tags object = {}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Every query starts from the metrics lines, one row per consumer per instance per minute.
var metricsLines = '''
traces
| where message has "consumer metrics"
| extend m = parse_json(message)
| where tostring(m.message) == "consumer metrics"
| extend consumer = tostring(m.consumer)
'''

var parameterVersion = 'KqlParameterItem/1.0'

// One chart: a query item of the workbook (Notebook/1.0 format).
var charts = [
  {
    title: 'Deliveries per consumer (delivered, failed)'
    query: '${metricsLines}| summarize delivered = sum(toint(m.delivered)), failed = sum(toint(m.failed)) by consumer, bin(timestamp, {TimeRange:grain})\n| render timechart'
    visualization: 'timechart'
  }
  {
    title: 'Failed deliveries per consumer: kept, not kept (the event comes again), refused by the breaker, held by a pause'
    query: '${metricsLines}| summarize kept = sum(toint(m.kept)), notKept = sum(toint(m.notKept)), breakerRefused = sum(toint(m.breakerRefused)), paused = sum(toint(m.paused)) by consumer, bin(timestamp, {TimeRange:grain})\n| render timechart'
    visualization: 'timechart'
  }
  {
    title: 'Retries per consumer (attempts after the first)'
    query: '${metricsLines}| summarize retried = sum(toint(m.retried)) by consumer, bin(timestamp, {TimeRange:grain})\n| render timechart'
    visualization: 'timechart'
  }
  {
    title: 'Delivery latency per consumer, retries included (ms; worst instance per interval)'
    query: '${metricsLines}| summarize p50 = max(todouble(m.latencyP50Ms)), p95 = max(todouble(m.latencyP95Ms)), p99 = max(todouble(m.latencyP99Ms)) by consumer, bin(timestamp, {TimeRange:grain})\n| render timechart'
    visualization: 'timechart'
  }
  {
    title: 'Circuit breaker state changes per consumer'
    query: '${metricsLines}| summarize changes = sum(toint(m.breakerChanges)) by consumer, bin(timestamp, {TimeRange:grain})\n| render columnchart'
    visualization: 'barchart'
  }
  {
    title: 'Totals per consumer over the time range'
    query: '${metricsLines}| summarize delivered = sum(toint(m.delivered)), failed = sum(toint(m.failed)), kept = sum(toint(m.kept)), notKept = sum(toint(m.notKept)), retried = sum(toint(m.retried)), breakerChanges = sum(toint(m.breakerChanges)), p95LatencyMs = max(todouble(m.latencyP95Ms)) by consumer\n| extend failedShare = round(100.0 * failed / iff(delivered + failed == 0, 1, delivered + failed), 2)\n| order by failed desc'
    visualization: 'table'
  }
]

var content = {
  version: 'Notebook/1.0'
  items: concat([
    {
      type: 1
      name: 'intro'
      content: {
        json: '## dvrouter consumers\nPer consumer, summed over every instance: deliveries, failures kept in the failure store, retries, circuit breaker changes and latency. `GET /api/consumers` shows each breaker now.'
      }
    }
    {
      type: 9
      name: 'parameters'
      content: {
        version: parameterVersion
        parameters: [
          {
            id: 'a6f4c0f1-6d3e-4b7a-9c55-1f2e3d4c5b6a'
            version: parameterVersion
            name: 'TimeRange'
            label: 'Time range'
            type: 4
            isRequired: true
            value: {
              durationMs: 86400000
            }
            typeSettings: {
              selectableValues: [
                {
                  durationMs: 3600000
                }
                {
                  durationMs: 14400000
                }
                {
                  durationMs: 86400000
                }
                {
                  durationMs: 604800000
                }
              ]
              allowCustom: true
            }
          }
        ]
      }
    }
  ], map(charts, c => {
    type: 3
    name: c.title
    content: {
      version: 'KqlItem/1.0'
      title: c.title
      query: c.query
      size: 0
      queryType: 0
      resourceType: 'microsoft.insights/components'
      timeContextFromParameter: 'TimeRange'
      visualization: c.visualization
    }
  }))
  fallbackResourceIds: [
    appInsights.id
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2021-08-01' = {
  // A workbook's name must be a GUID; this one is stable per component, so redeploying updates it.
  name: guid(appInsights.id, 'dvrouter-consumers-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    version: 'Notebook/1.0'
    sourceId: appInsights.id
    serializedData: string(content)
  }
}

output id string = workbook.id
