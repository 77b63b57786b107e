/**
 * The parts of the Docker Engine API's JSON that Steward reads or writes (API v1.43 shapes, PascalCase as on the wire).
 * Only what is used is typed; everything else the engine sends is ignored.
 */

export type ContainerStatus = "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead";
export type ContainerHealthStatus = "starting" | "healthy" | "unhealthy" | "none";

/** One row of `GET /containers/json`. */
export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  Command: string;
  Created: number;
  State: ContainerStatus;
  Status: string;
  Labels: Record<string, string>;
}

/** `GET /containers/{id}/json`. `Config.Env` may hold secrets: read it only to compare, never log or publish it. */
export interface ContainerInspect {
  Id: string;
  Name: string;
  Created: string;
  /** The image id (`sha256:…`) the container was created from. */
  Image: string;
  RestartCount: number;
  State: {
    Status: ContainerStatus;
    Running: boolean;
    Paused: boolean;
    Restarting: boolean;
    OOMKilled: boolean;
    Dead: boolean;
    Pid: number;
    ExitCode: number;
    Error: string;
    StartedAt: string;
    FinishedAt: string;
    Health?: { Status: ContainerHealthStatus; FailingStreak: number; Log: { Start: string; End: string; ExitCode: number; Output: string }[] };
  };
  /** Bind and volume mounts (paths only are ever shown). */
  Mounts?: { Type: string; Source?: string; Destination: string; RW?: boolean }[];
  NetworkSettings?: { Ports?: Record<string, { HostIp?: string; HostPort: string }[] | null> | null };
  Config: {
    Image: string;
    /** A TTY container's log is one raw stream; otherwise stdout and stderr come multiplexed in frames. */
    Tty?: boolean;
    Env: string[] | null;
    Labels: Record<string, string> | null;
    Cmd: string[] | null;
    Healthcheck?: HealthConfig;
  };
}

/** Durations in nanoseconds, as the engine wants them. */
export interface HealthConfig {
  Test: string[];
  Interval?: number;
  Timeout?: number;
  Retries?: number;
  StartPeriod?: number;
}

/** Body of `POST /containers/create`. */
export interface ContainerCreateBody {
  Image: string;
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string>;
  Healthcheck?: HealthConfig;
  ExposedPorts?: Record<string, Record<string, never>>;
  HostConfig?: {
    RestartPolicy?: { Name: "" | "no" | "always" | "unless-stopped" | "on-failure"; MaximumRetryCount?: number };
    PortBindings?: Record<string, { HostIp?: string; HostPort: string }[]>;
    Binds?: string[];
  };
}

export interface ContainerCreateResponse {
  Id: string;
  Warnings: string[];
}

/** One line of `GET /events` (only what Steward reads). */
export interface EngineEvent {
  Type: string;
  /** `die`, `kill`, `start`, `pause`, `health_status: healthy`, … */
  Action: string;
  Actor: { ID: string; Attributes?: Record<string, string> };
  time?: number;
}
