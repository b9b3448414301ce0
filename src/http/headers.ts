/** Names the stored event(s) in replies that store events: the push, a replay, a re-verification, a check. */
export const EVENT_ID_HEADER = 'cloudoreg-event-id'
