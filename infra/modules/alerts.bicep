// Alerts that tell devops when events are not getting through, sent to one action group (email):
//   - a delivery failure was recorded (dvrouter's structured log line "failure recorded");
//   - messages were dead-lettered on the ingress queue (Service Bus metric);
//   - a consumer's circuit breaker opened (log line "breaker state changed" with "to":"open");
//   - function invocations failed (Application Insights requests and exceptions);
//   - failed deliveries could not be kept (the "consumer metrics" lines dvrouter writes once a
//     minute per consumer, field notKept: the failure store refused them, so the events go back
//     to Dataverse or Service Bus and come again);
//   - a table read by change tracking has had no complete read for longer than its schedule
//     allows (the "change tracking read" line each run writes per table), or Dataverse refused
//     a stored change token, which starts a full read (metric "changes.tokenRefused").
// dvrouter writes one JSON object per line to stdout; the Functions host forwards each line to
// Application Insights as a trace whose message is that line, so the log alerts match on the
// message text and read fields with parse_json when the line is JSON.

@description('Azure region of the log alert rules (the Application Insights region).')
param location string

@description('Prefix for the alert rule names.')
param namePrefix string

@description('Application Insights component the log alerts query.')
param appInsightsName string

@description('Service Bus namespace whose dead-letter count is watched.')
param serviceBusNamespaceName string

@description('Ingress queue name.')
param queueName string

@description('Email address the alerts go to.')
param alertEmail string

@description('Failed invocations in 15 minutes above which the function-errors alert fires.')
@minValue(0)
param functionErrorThreshold int = 5

@description('Minutes a change-tracking table may go without a complete read before the stale-table alert fires (DVROUTER_CHANGES_STALE_AFTER).')
@minValue(1)
param changesStaleAfterMinutes int = 15

param tags object = {}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-alerts'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: take(replace(namePrefix, '-', ''), 12)
    enabled: true
    emailReceivers: [
      {
        name: 'devops'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource failuresRecorded 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-failures-recorded'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'dvrouter: delivery failures recorded'
    description: 'A delivery to a consumer failed after its retries (or its breaker was open) and was kept in the failure store. Review and replay with the failures API.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '''
traces
| where message has "recorded" and message contains "failure recorded"
| extend entry = parse_json(message)
| extend consumer = iff(isempty(tostring(entry.consumer)), "(none)", tostring(entry.consumer))
| summarize failures = count() by consumer
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'failures'
          dimensions: [
            {
              name: 'consumer'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource breakerOpened 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-breaker-opened'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'dvrouter: consumer circuit breaker opened'
    description: 'A consumer failed repeatedly and its circuit breaker opened: deliveries to it are failing fast and being recorded until it recovers.'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '''
traces
| where message has "breaker" and message contains "breaker state changed"
| extend entry = parse_json(message)
| where tostring(entry.to) == "open" or message contains '"to":"open"'
| extend consumer = iff(isempty(tostring(entry.consumer)), "(none)", tostring(entry.consumer))
| summarize opened = count() by consumer
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'opened'
          dimensions: [
            {
              name: 'consumer'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource failuresNotKept 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-failures-not-kept'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'dvrouter: failed deliveries could not be kept'
    description: 'Deliveries failed and the failure store did not take them: nothing is lost (the events were not acknowledged and come again), but until the store answers, Dataverse and Service Bus are retrying. Check the storage account and the breaker store log lines.'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '''
traces
| where message has "consumer metrics"
| extend entry = parse_json(message)
| where tostring(entry.message) == "consumer metrics"
| extend consumer = tostring(entry.consumer), notKept = toint(entry.notKept)
| summarize notKept = sum(notKept) by consumer
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'notKept'
          dimensions: [
            {
              name: 'consumer'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource functionErrors 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-function-errors'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'dvrouter: function invocations failing'
    description: 'Function invocations failed or threw. For DataverseQueue this means messages are going back to the queue (and, after 10 deliveries, to its dead-letter queue).'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '''
union
    (requests | where success == false | project operation_Name),
    (exceptions | project operation_Name)
| summarize errors = count() by operation_Name
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'errors'
          dimensions: [
            {
              name: 'operation_Name'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: functionErrorThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource deadLettered 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-dead-lettered'
  location: 'global'
  tags: tags
  properties: {
    description: 'Messages are in the dead-letter queue of the ingress queue: they failed 10 deliveries or expired. Inspect them with Service Bus Explorer; dvrouter does not read the dead-letter queue.'
    severity: 1
    enabled: true
    scopes: [
      namespace.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'deadlettered'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'DeadletteredMessages'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                queueName
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

output actionGroupId string = actionGroup.id

// A table read by change tracking whose last complete read (a run that reached the delta link
// without an error) is older than changesStaleAfterMinutes, among the tables read in the last
// day. A table that was never read, or not for a day, shows in `dvrouter changes status`.
resource changesStale 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-changes-stale'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'dvrouter: change tracking table not read in time'
    description: 'A table read by change tracking has not been read to its end for longer than its schedule allows: changes are waiting in Dataverse. Check dvrouter changes status and the change tracking read lines.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'P1D'
    criteria: {
      allOf: [
        {
          // A multi-line string takes no interpolation: the threshold goes in with replace.
          query: replace('''
traces
| where message has "change tracking read"
| extend entry = parse_json(message)
| extend table = tostring(entry.table), complete = tobool(entry.complete) and isempty(tostring(entry.error))
| summarize lastRead = maxif(timestamp, complete), lastTry = max(timestamp) by table
| extend minutesSince = datetime_diff('minute', now(), iff(isnull(lastRead), lastTry - 1d, lastRead))
| where minutesSince > STALE_MINUTES
| summarize stale = count() by table
''', 'STALE_MINUTES', string(changesStaleAfterMinutes))
          timeAggregation: 'Total'
          metricMeasureColumn: 'stale'
          dimensions: [
            {
              name: 'table'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// Dataverse refused a stored change token (expired: older than the organization's
// ExpireChangeTrackingInDays): dvrouter reads the whole table again and consumers get every row.
resource changesTokenRefused 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-changes-token-refused'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'dvrouter: change token refused, full read started'
    description: 'Dataverse refused the stored change-tracking token of a table (most often: not read for longer than ExpireChangeTrackingInDays). dvrouter started a full read; consumers receive every row of the table again.'
    severity: 3
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '''
traces
| where message has "changes.tokenRefused"
| extend entry = parse_json(message)
| extend table = tostring(entry.table)
| summarize refused = count() by table
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'refused'
          dimensions: [
            {
              name: 'table'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}
