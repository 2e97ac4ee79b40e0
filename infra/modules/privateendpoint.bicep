// One private endpoint for one sub-resource of a service (blob, table, queue, namespace,
// vault), registered in its private DNS zone.

@description('Azure region.')
param location string

@description('Private endpoint name.')
param name string

@description('Subnet the endpoint takes its address from.')
param subnetId string

@description('Resource id of the service the endpoint connects to.')
param targetId string

@description('Sub-resource (group id): blob, table, queue, namespace or vault.')
param groupId string

@description('Private DNS zone the endpoint registers its address in.')
param dnsZoneId string

param tags object = {}

resource endpoint 'Microsoft.Network/privateEndpoints@2023-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: name
        properties: {
          privateLinkServiceId: targetId
          groupIds: [
            groupId
          ]
        }
      }
    ]
  }
}

resource dnsGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: groupId
        properties: {
          privateDnsZoneId: dnsZoneId
        }
      }
    ]
  }
}

output id string = endpoint.id
