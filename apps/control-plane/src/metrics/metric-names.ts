/**
 * Every metric Fleetline exports, by name. The Grafana dashboard and docs/metrics.md refer to
 * these; deployment-files.spec.ts checks that the dashboard uses no name missing from here.
 */
export const METRIC = {
  devices: 'fleetline_devices',
  modelVersionDevices: 'fleetline_model_version_devices',
  rollouts: 'fleetline_rollouts',
  rolloutDevices: 'fleetline_rollout_devices',
  updateOutcomes: 'fleetline_update_outcomes_total',
  deviceMessages: 'fleetline_device_messages_total',
  telemetryReceived: 'fleetline_telemetry_messages_received_total',
  telemetrySamples: 'fleetline_telemetry_samples_total',
  telemetryRejected: 'fleetline_telemetry_rejected_total',
  telemetryAgentDropped: 'fleetline_telemetry_agent_dropped_total',
  telemetryBatches: 'fleetline_telemetry_batches_total',
  telemetryQueueDepth: 'fleetline_telemetry_queue_depth',
  telemetryLastBatchSeconds: 'fleetline_telemetry_last_batch_seconds',
  mqttConnections: 'fleetline_mqtt_connections',
  dbPool: 'fleetline_db_pool_connections',
  desiredSync: 'fleetline_desired_sync_total',
  mqttDenials: 'fleetline_mqtt_denials_total',
  mqttDisconnects: 'fleetline_mqtt_disconnects_total',
  mqttAckSeconds: 'fleetline_mqtt_publish_ack_seconds',
  mqttConnectsPending: 'fleetline_mqtt_connects_pending',
  mqttConnectsBusy: 'fleetline_mqtt_connects_refused_busy_total',
  artifactStreams: 'fleetline_artifact_streams',
  artifactStreamsBusy: 'fleetline_artifact_streams_refused_busy_total',
  brokerAuth: 'fleetline_broker_auth_total',
  rateLimited: 'fleetline_rate_limited_total',
  rateLimitStoreErrors: 'fleetline_rate_limit_store_errors_total',
  auditRefusalsDropped: 'fleetline_audit_refusals_dropped_total',
  httpDuration: 'fleetline_http_request_duration_seconds',
  scrapeErrors: 'fleetline_metrics_scrape_errors_total',
} as const;

/** Series names a Prometheus query may use: histograms add _bucket, _sum and _count. */
export function exportedSeriesNames(): Set<string> {
  const names = new Set<string>(Object.values(METRIC));
  for (const histogram of [METRIC.httpDuration, METRIC.mqttAckSeconds]) for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${histogram}${suffix}`);
  return names;
}
