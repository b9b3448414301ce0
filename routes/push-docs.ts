import { Type } from '@sinclair/typebox'

// What the OpenAPI document says about the push route, beyond its validation: the route takes every
// body raw (a 415 would lose an event), so these schemas document and never validate. The examples
// are the README's event (ApplicationAuthentication.create of application 42, authentication 311),
// so Swagger UI's "Try it out" pushes exactly what the README's curl pushes.

const NATIVE = { id: 99, application_id: 42, authentication_id: 311, tenant: '1234567' }
const ORG_ID = '7654321'
const ACCOUNT = '1234567'

const header = (description: string, example?: string) => Type.Optional(Type.String(example === undefined ? { description } : { description, examples: [example] }))

/** Request headers by format; only the sources-native ones carry examples, so Try-it-out sends a sources-native push. */
export const PushHeaders = Type.Object({
  event_type: header('sources-native: the Kafka header event_type', 'ApplicationAuthentication.create'),
  'x-rh-sources-org-id': header('sources-native: the tenant (org id); every event needs one, here or in x-rh-identity', ORG_ID),
  'x-rh-sources-account-number': header('sources-native: the EBS account number, when the tenant has one', ACCOUNT),
  'x-rh-identity': header('sources-native: base64 identity JSON; its org_id is the tenant when x-rh-sources-org-id is absent'),
  'ce-id': header('CloudEvents binary (Knative KafkaSource): event id; with ce-source, the dedupe key'),
  'ce-source': header('CloudEvents binary: event source'),
  'ce-specversion': header('CloudEvents binary: 1.0'),
  'ce-type': header('CloudEvents binary: dev.knative.kafka.event'),
  'ce-kafkaheadereventtype': header('CloudEvents binary: the Kafka header event_type'),
  'ce-kafkaheaderxrhsourcesorgid': header('CloudEvents binary: the Kafka header x-rh-sources-org-id'),
  'ce-kafkaheaderxrhsourcesaccountnumber': header('CloudEvents binary: the Kafka header x-rh-sources-account-number'),
  'ce-kafkaheaderxrhidentity': header('CloudEvents binary: the Kafka header x-rh-identity'),
  'webhook-id': header('Standard Webhooks: delivery id, also the dedupe key of a sources-native push'),
  'webhook-timestamp': header('Standard Webhooks: Unix seconds, within 5 minutes of now'),
  'webhook-signature': header('Standard Webhooks: v1,<base64 HMAC-SHA256 over id.timestamp.body with PUSH_WEBHOOK_SECRET>')
})

const structured = {
  specversion: '1.0',
  id: 'partition:0/offset:1234',
  source: '/apis/v1/namespaces/sources/kafkasources/cloudoreg#platform.sources.event-stream',
  type: 'dev.knative.kafka.event',
  datacontenttype: 'application/json',
  data: NATIVE,
  kafkaheadereventtype: 'ApplicationAuthentication.create',
  kafkaheaderxrhsourcesorgid: ORG_ID,
  kafkaheaderxrhsourcesaccountnumber: ACCOUNT
}
const base64 = (s: string): string => Buffer.from(s).toString('base64')

/** Request bodies by Content-Type, each with an example of the same event. */
export const PushBodies = {
  content: {
    'application/json': {
      schema: {
        type: 'object',
        description: 'sources-native: the Kafka record value as it is (with the headers above); or a Strimzi HTTP bridge record batch',
        'x-examples': {
          'sources-native': { summary: 'the README event (with event_type and x-rh-sources-org-id headers)', value: NATIVE },
          'record batch': {
            summary: 'Strimzi HTTP bridge records (header values base64; no event headers needed)',
            value: {
              records: [{
                topic: 'platform.sources.event-stream',
                partition: 0,
                offset: 1234,
                value: NATIVE,
                headers: [{ key: 'event_type', value: base64('ApplicationAuthentication.create') }, { key: 'x-rh-sources-org-id', value: base64(ORG_ID) }]
              }]
            }
          }
        }
      }
    },
    'application/cloudevents+json': {
      schema: { type: 'object', description: 'CloudEvents structured mode; Kafka headers as kafkaheader<name> attributes', examples: [structured] }
    },
    'application/cloudevents-batch+json': {
      schema: { type: 'array', items: { type: 'object' }, description: 'CloudEvents batch mode: structured events, stored all or nothing', examples: [[structured]] }
    }
  }
}
