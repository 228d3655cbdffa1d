"""PlexSync's persistent queues: the dead-letter queue, the live job queue, and recovery between them."""
